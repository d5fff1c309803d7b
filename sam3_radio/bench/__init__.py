"""`sam3-radio bench`: latency and memory of the PE and C-RADIOv4 trunks, and of whole pipelines.

Every time is reported next to a ratio against a reference measured in the same run (the PE
trunk, or a plain matrix product), because absolute times on shared machines are noisy.
"""
