"""The world store's schema revisions, oldest first."""
