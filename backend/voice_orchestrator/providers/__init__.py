"""Speech-to-text, language model and text-to-speech providers behind small Protocols."""
