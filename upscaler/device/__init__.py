"""Device and memory helpers: host<->device transfer, sample formats, CPU heap control, stage timing, memory
watching."""
