"""The OpenAI Realtime protocol on ``/v1/realtime``, over the conversation core: the socket
(``router``), the session configuration (``session``), the input audio buffer and client items
(``input``), responses (``output``) and the server events in either dialect (``wire``)."""
