"""The order store's schema revisions, oldest first."""
