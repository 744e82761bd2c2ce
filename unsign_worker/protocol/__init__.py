"""Gateway protocol: parameters and identity, signing, answer parsing, the error catalogue, the
HTTP client. Pure except the client; imports nothing else of the project."""
