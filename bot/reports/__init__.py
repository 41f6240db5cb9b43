"""Read-only views of the data: statistics, breakdowns, the digest, exports, previews and content checks."""
