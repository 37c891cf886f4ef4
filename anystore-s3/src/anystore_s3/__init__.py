"""anystore_s3: the s3 backend plugin for anystore."""
