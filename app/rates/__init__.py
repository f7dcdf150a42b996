"""Exchange rates the platform quotes in: fetched daily, kept with their fetch time."""
