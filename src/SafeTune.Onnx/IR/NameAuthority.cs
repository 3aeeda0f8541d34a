namespace SafeTune.Onnx;

/// <summary>
/// Hands out unique names. One authority serves a whole model (the main graph and its subgraphs), because ONNX value names
/// are single-assignment across nested scopes.
/// </summary>
public sealed class NameAuthority
{
    private readonly HashSet<string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _counters = new(StringComparer.Ordinal);

    /// <summary>True when a value already has this name.</summary>
    public bool IsValueNameTaken(string name) => _values.Contains(name);

    /// <summary>Registers a name read from a file; returns false if it was already taken.</summary>
    public bool ClaimValueName(string name) => _values.Add(name);

    /// <summary>Registers a node name read from a file.</summary>
    public void ClaimNodeName(string name)
    {
        if (name.Length > 0) _nodes.Add(name);
    }

    /// <summary>Forgets a value name (after the value is removed).</summary>
    public void ReleaseValueName(string name) => _values.Remove(name);

    /// <summary>Returns <paramref name="hint"/> if unused, else <c>hint_1</c>, <c>hint_2</c>, ...; the result is claimed.</summary>
    public string NewValueName(string hint) => Unique(_values, hint);

    /// <summary>Returns a unique node name derived from <paramref name="hint"/>; the result is claimed.</summary>
    public string NewNodeName(string hint) => Unique(_nodes, hint);

    private string Unique(HashSet<string> taken, string hint)
    {
        if (hint.Length == 0) hint = "v";
        if (taken.Add(hint)) return hint;
        _counters.TryGetValue(hint, out int n);
        string candidate;
        do candidate = $"{hint}_{++n}"; while (!taken.Add(candidate));
        _counters[hint] = n;
        return candidate;
    }
}
