"""Real servers the suite starts and stops itself (S3 via SeaweedFS/moto, Pravega standalone)."""
