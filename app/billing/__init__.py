"""Money: the price table and what a job costs (architecture §3.1 "Money"); see docs/PRICES.md."""
