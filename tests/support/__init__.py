"""Test support: throwaway redis-server processes and worker handlers for subprocess tests."""
