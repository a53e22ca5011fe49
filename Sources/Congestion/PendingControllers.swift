// TEMPORARY (not committed): stand-ins until the helpers' controllers land.
public typealias Cubic = NewReno
public typealias Westwood = NewReno
public typealias BBR = NewReno
public typealias Copa = NewReno
