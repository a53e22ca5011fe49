public enum CongestionPlaceholder {}
