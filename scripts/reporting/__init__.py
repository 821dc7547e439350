"""What a user looks at: overlay montages, the FF chart against the reference, the HTML report."""
