"""Tests of the edge agent, its codecs, outbox and the protocol simulators it is tested against."""
