"""Signed webhook delivery: payloads, Standard Webhooks signing, the sender and the dispatcher loop."""
