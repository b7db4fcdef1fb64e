"""Device profiles shipped with ParkPulse: one YAML register map per meter model (data, not code).

Load them with :func:`edge.profile.load_profile` / :func:`edge.profile.builtin_profiles`; a site can add
its own files next to its ``edge.yaml`` (``profile_paths``).
"""
