"""Kubernetes: the Job, Indexed Job and CronJob manifests of an export or import
(jobs.py), the names and quantities they are made of (names.py), and the termination
message a finished pod leaves (termination.py)."""
