"""Where finished videos are kept: the Storage protocol, local files, S3, the copy from upstream, probing."""
