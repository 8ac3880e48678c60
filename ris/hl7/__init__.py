"""HL7 v2: the MLLP transport, message handling and the mapping to the worklist domain."""
