"""Who calls the gateway: client API keys, the tenants they belong to, and each tenant's quotas."""
