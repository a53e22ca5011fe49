// The syntax of /etc/tquic.conf, WireGuard-style INI: `[section]` headers (a section may repeat,
// like `[wan]` or `[tenant]`), `key = value` lines, `#` or `;` comments, blank lines. This file
// only splits the text and keeps every line number; DaemonConfiguration.swift gives the keys
// their meaning. Pure Swift without Foundation, so the fuzz target builds it alone.

/// A configuration error that names the file, the line (0: the file as a whole) and the problem.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// One `key = value` line.
public struct ConfigEntry: Equatable {
    public var key: String
    public var value: String
    public var line: Int
}

/// One `[name]` section and its entries, in file order.
public struct ConfigSection: Equatable {
    public var name: String
    public var line: Int
    public var entries: [ConfigEntry]
}

public enum ConfigFile {
    /// The longest line accepted: a key is never near this, and a megabyte-long "line" is a
    /// binary file given by mistake.
    static let maxLineBytes = 4096

    /// Splits `text` into sections. Entries before the first header are an error (every key
    /// belongs to a section), as are duplicate keys within one section.
    public static func parse(_ text: String, file: String) throws -> [ConfigSection] {
        var sections: [ConfigSection] = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            guard rawLine.utf8.count <= maxLineBytes else {
                throw ConfigError(file: file, line: lineNumber, "line longer than \(maxLineBytes) bytes")
            }
            let line = stripComment(rawLine).trimmingSpaces()
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigError(file: file, line: lineNumber, "a section header is `[name]`, got `\(line)`")
                }
                let name = String(line.dropFirst().dropLast()).trimmingSpaces().lowercased()
                guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                    throw ConfigError(file: file, line: lineNumber, "invalid section name `\(line)`")
                }
                sections.append(ConfigSection(name: name, line: lineNumber, entries: []))
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(file: file, line: lineNumber, "expected `key = value` or `[section]`, got `\(line)`")
            }
            let key = String(line[..<eq]).trimmingSpaces().lowercased()
            let value = String(line[line.index(after: eq)...]).trimmingSpaces()
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                throw ConfigError(file: file, line: lineNumber, "invalid key `\(String(line[..<eq]).trimmingSpaces())`")
            }
            guard !sections.isEmpty else {
                throw ConfigError(file: file, line: lineNumber, "`\(key)` comes before any [section]")
            }
            if let earlier = sections[sections.count - 1].entries.first(where: { $0.key == key }) {
                throw ConfigError(
                    file: file, line: lineNumber,
                    "`\(key)` already set on line \(earlier.line) in this [\(sections[sections.count - 1].name)]")
            }
            sections[sections.count - 1].entries.append(ConfigEntry(key: key, value: value, line: lineNumber))
        }
        return sections
    }

    /// The line without a `#` or `;` comment (values never contain either: keys, addresses,
    /// base64 and names do not use them).
    private static func stripComment(_ line: Substring) -> Substring {
        if let i = line.firstIndex(where: { $0 == "#" || $0 == ";" }) { return line[..<i] }
        return line
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and carriage returns (a file edited on Windows).
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
