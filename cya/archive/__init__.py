"""The archive of finished years in S3 (DESIGN.md 4): bags, manifests, thaws, system/."""
