"""The mapping language: YAML mapping files compiled once into Python callables.

    from mappings.language import load_mapping
    m = load_mapping("mappings/partners/acme/850.yaml")
    data = m.map_x12(segments)          # one ST..SE transaction set
    docs = m.map_csv(text, details)     # a CSV upload: one dict per document
    data = m.map_json(body)             # a parsed JSON document
"""

from mappings.language.mapping import CompiledMapping, check, load

load_mapping = load

__all__ = ["CompiledMapping", "check", "load", "load_mapping"]
