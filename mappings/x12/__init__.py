"""X12 EDI: streaming reader, specifications (pyx12 maps), validator and acknowledgments."""
