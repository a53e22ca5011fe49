import QUIC
import CAllocationCounter
print(tquic_allocation_count())
