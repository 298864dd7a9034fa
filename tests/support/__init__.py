"""Test support: databases for both backends, a recording Bot session, update builders."""
