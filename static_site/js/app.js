// Placeholder while the app is written.
