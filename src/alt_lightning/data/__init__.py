"""Video data: annotation parsers, sampling, PyAV decoding, transforms and the generic video dataset."""
