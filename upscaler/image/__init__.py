"""Still images: reading and writing every format and bit depth (io), and upscaling one file (upscale)."""
