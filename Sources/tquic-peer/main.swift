import QUIC
