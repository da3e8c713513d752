"""S3 through maintained clients: the retry policy, listings, control calls, object bodies, open multipart uploads."""
