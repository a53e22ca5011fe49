// The version tquicd and tquicctl print (`--version`), kept in step with debian/changelog.
public enum TQUICVersion {
    public static let string = "0.5.0"
}
