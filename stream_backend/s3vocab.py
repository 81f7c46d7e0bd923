"""S3's words for how an object is stored, in a module light enough for every command's
options and the custom resources' schemas (the S3 target itself loads fsspec)."""

#: server-side encryption S3 applies at rest with keys it holds (SSE-S3, SSE-KMS)
SSE_MODES = ("AES256", "aws:kms")
#: storage classes whose objects read back at once, so import and verify need no restore
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
                   "REDUCED_REDUNDANCY")
#: classes that need a restore before any read: reachable through a lifecycle rule instead
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
#: Object Lock retention modes: GOVERNANCE yields to a holder of s3:BypassGovernanceRetention,
#: COMPLIANCE to no one until the date passes
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
#: the longest retention a flag takes (S3 allows 100 years)
MAX_LOCK_DAYS = 36500
