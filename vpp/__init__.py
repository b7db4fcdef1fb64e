"""The virtual-power-plant loop: DR events in over OpenADR 2.0b and 3, setpoints out to the devices, live M&V.

Event intake normalises both OpenADR versions into one event model; the dispatcher plans per-asset
setpoints (flex's planner), sends them on the devices' command topics and tracks their acknowledgements;
live M&V measures the delivered reduction against the baseline fixed at notification and reports it back.
"""
