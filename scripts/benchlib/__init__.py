"""Benchmark harness behind ``scripts/bench``: servers, data, peers, cases, report.

Every number it prints comes from a real process on this machine: a real SeaweedFS S3
server on loopback, the real peer tools (s5cmd, rclone, awscli, duplicity, cp/cat/dd)
and the real ``stream-backend`` CLI. See docs/benchmarks.md for how to read the output.
"""
