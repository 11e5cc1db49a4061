"""The merged catalog: namespacing, collisions, resource URI mapping, pagination."""
