"""Sans-I/O SMPP 3.4: PDU types, codec, session state machine.  No sockets, no clock reads."""
