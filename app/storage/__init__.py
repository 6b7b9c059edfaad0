"""Where finished videos are kept: the Storage protocol, local files, the copy from upstream, probing."""
