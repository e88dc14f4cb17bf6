"""Real servers started by the test fixtures."""
