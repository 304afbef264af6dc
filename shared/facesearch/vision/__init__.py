"""Face vision pipeline: decode → detect → liveness → quality → align → embed."""
