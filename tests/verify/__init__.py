"""verify: probes, judging, recording and replaying real exchanges."""
