namespace SafeTune.Onnx;

/// <summary>An operator application. Inputs may be null (an omitted optional input); outputs are never null.</summary>
public sealed class Node
{
    internal readonly List<Value?> InputsList = [];
    internal readonly List<Value> OutputsList = [];

    internal Node(Graph graph, string name, string opType, string domain)
    {
        Graph = graph;
        Name = name;
        OpType = opType;
        Domain = domain;
    }

    /// <summary>The graph that holds this node.</summary>
    public Graph Graph { get; }

    /// <summary>The node name (may be empty in files; names made by SafeTune are unique).</summary>
    public string Name { get; set; }

    /// <summary>The operator type, e.g. <c>MatMul</c>.</summary>
    public string OpType { get; }

    /// <summary>The operator domain; "" is the default <c>ai.onnx</c> domain.</summary>
    public string Domain { get; }

    /// <summary>The operator overload (functions only).</summary>
    public string Overload { get; set; } = "";

    /// <summary>Documentation.</summary>
    public string DocString { get; set; } = "";

    /// <summary>Metadata properties attached to the node.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = [];

    /// <summary>The inputs in slot order; a null entry is an omitted optional input.</summary>
    public IReadOnlyList<Value?> Inputs => InputsList;

    /// <summary>The outputs in slot order.</summary>
    public IReadOnlyList<Value> Outputs => OutputsList;

    /// <summary>The attributes, in the order they were set.</summary>
    public OrderedDictionary<string, Attribute> Attributes { get; } = new(StringComparer.Ordinal);

    /// <summary>The domain as shown to users: <c>ai.onnx</c> for the default domain.</summary>
    public string DomainName => Domain.Length == 0 ? "ai.onnx" : Domain;

    /// <summary>The i-th input, or null when it is absent or omitted.</summary>
    public Value? Input(int i) => i < InputsList.Count ? InputsList[i] : null;

    /// <summary>Replaces the value read at input slot <paramref name="index"/>, keeping use lists right.</summary>
    public void SetInput(int index, Value? value)
    {
        while (InputsList.Count <= index) InputsList.Add(null);
        var old = InputsList[index];
        if (ReferenceEquals(old, value)) return;
        old?.UsesList.Remove(new Use(this, index));
        InputsList[index] = value;
        value?.UsesList.Add(new Use(this, index));
    }

    /// <summary>Appends an input.</summary>
    public void AddInput(Value? value) => SetInput(InputsList.Count, value);

    /// <summary>Appends a value that nothing produces yet as this node's next output (an optional output being enabled).</summary>
    public void AddOutput(Value value) => Graph.AttachOutput(this, value);

    /// <summary>Sets or replaces an attribute.</summary>
    public Node Set(Attribute attribute)
    {
        Attributes[attribute.Name] = attribute;
        return this;
    }

    /// <summary>An int attribute, or <paramref name="fallback"/> when absent.</summary>
    public long GetInt(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.Int : fallback;

    /// <summary>A float attribute, or <paramref name="fallback"/> when absent.</summary>
    public float GetFloat(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.Float : fallback;

    /// <summary>A string attribute, or <paramref name="fallback"/> when absent.</summary>
    public string GetString(string name, string fallback) => Attributes.TryGetValue(name, out var a) ? a.String : fallback;

    /// <summary>An ints attribute, or null when absent.</summary>
    public IReadOnlyList<long>? GetInts(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;

    /// <summary>True when an attribute holds a subgraph (If, Loop, Scan): reads inside it are not on any use list.</summary>
    public bool HasSubgraphs => Attributes.Values.Any(a => a.Graph is not null || a.Graphs.Count > 0);

    /// <summary>A short description for error messages: op type and name.</summary>
    public string Describe() => Name.Length > 0 ? $"{OpType} node '{Name}'" : $"{OpType} node producing '{OutputsList.FirstOrDefault()?.Name}'";

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name} = {(Domain.Length > 0 ? Domain + "." : "")}{OpType}({string.Join(", ", InputsList.Select(v => v?.Name ?? ""))}) -> ({string.Join(", ", OutputsList.Select(v => v.Name))})";
}
