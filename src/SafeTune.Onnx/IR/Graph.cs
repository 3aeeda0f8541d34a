namespace SafeTune.Onnx;

/// <summary>
/// A mutable ONNX graph: nodes in order, inputs, outputs and initializers, and a name table of every value in its scope.
/// A subgraph (the body of If, Loop or Scan) has a <see cref="Parent"/> and may read values of the enclosing graphs.
/// </summary>
public sealed class Graph
{
    internal readonly List<Node> NodesList = [];
    internal readonly List<Value> InputsList = [];
    internal readonly List<Value> OutputsList = [];
    private readonly OrderedDictionary<string, Value> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);

    /// <summary>Creates a top-level graph.</summary>
    public Graph(string name = "main") : this(name, null, new NameAuthority()) { }

    internal Graph(string name, Graph? parent, NameAuthority names)
    {
        Name = name;
        Parent = parent;
        Names = names;
    }

    /// <summary>Creates an empty subgraph whose scope is nested in this one.</summary>
    public Graph CreateSubgraph(string name) => new(name, this, Names);

    /// <summary>The graph name.</summary>
    public string Name { get; set; }

    /// <summary>Documentation.</summary>
    public string DocString { get; set; } = "";

    /// <summary>Metadata properties of the graph.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = [];

    /// <summary>The enclosing graph, for subgraphs.</summary>
    public Graph? Parent { get; }

    /// <summary>The authority for unique value and node names, shared by the whole model.</summary>
    public NameAuthority Names { get; }

    /// <summary>The nodes, in their current order (see <see cref="SortTopologically"/>).</summary>
    public IReadOnlyList<Node> Nodes => NodesList;

    /// <summary>The graph inputs, in order.</summary>
    public IReadOnlyList<Value> Inputs => InputsList;

    /// <summary>The graph outputs, in order.</summary>
    public IReadOnlyList<Value> Outputs => OutputsList;

    /// <summary>The initializers, in order.</summary>
    public IEnumerable<Value> Initializers => _initializers.Values;

    /// <summary>Every value defined in this graph's own scope.</summary>
    public IEnumerable<Value> Values => _values.Values;

    /// <summary>Every node in this graph and, recursively, in its subgraphs.</summary>
    public IEnumerable<Node> AllNodes()
    {
        foreach (var n in NodesList)
        {
            yield return n;
            foreach (var a in n.Attributes.Values)
            {
                if (a.Graph is not null) foreach (var m in a.Graph.AllNodes()) yield return m;
                foreach (var g in a.Graphs) foreach (var m in g.AllNodes()) yield return m;
            }
        }
    }

    /// <summary>Finds a value by name in this scope or an enclosing one.</summary>
    public Value? FindValue(string name)
    {
        for (var g = this; g is not null; g = g.Parent)
            if (g._values.TryGetValue(name, out var v)) return v;
        return null;
    }

    /// <summary>Finds a value by name, or throws naming the value.</summary>
    public Value GetValue(string name) => FindValue(name) ?? throw new KeyNotFoundException($"graph '{Name}' has no value named '{name}'.");

    /// <summary>Finds an initializer by name in this graph.</summary>
    public Value? FindInitializer(string name) => _initializers.TryGetValue(name, out var v) ? v : null;

    /// <summary>Creates a value with a unique name derived from <paramref name="nameHint"/>, not yet produced by anything.</summary>
    public Value CreateValue(string nameHint, ElementType type = ElementType.Undefined, Shape? shape = null)
    {
        var v = new Value(this, Names.NewValueName(nameHint)) { ElementType = type, Shape = shape };
        _values[v.Name] = v;
        return v;
    }

    /// <summary>Creates a value with exactly this name; throws if the name is taken.</summary>
    public Value CreateValueExact(string name, ElementType type = ElementType.Undefined, Shape? shape = null)
    {
        if (!Names.ClaimValueName(name))
            throw new OnnxFormatException($"graph '{Name}': the value name '{name}' is defined more than once.");
        var v = new Value(this, name) { ElementType = type, Shape = shape };
        _values[name] = v;
        return v;
    }

    /// <summary>Adds a graph input.</summary>
    public Value AddInput(string name, ElementType type, Shape? shape)
    {
        var v = FindValue(name) is { } existing && existing.Graph == this && existing.IsInitializer
            ? existing
            : CreateValueExact(name, type, shape);
        v.ElementType = type;
        v.Shape = shape;
        InputsList.Add(v);
        return v;
    }

    /// <summary>Adds an initializer holding <paramref name="data"/> under the data's name.</summary>
    public Value AddInitializer(TensorData data)
    {
        var v = FindValue(data.Name) is { } existing && existing.Graph == this && existing.IsGraphInput && existing.Initializer is null
            ? existing
            : CreateValueExact(data.Name);
        v.ElementType = data.ElementType;
        v.Shape = data.Shape;
        v.Initializer = data;
        _initializers[v.Name] = v;
        return v;
    }

    /// <summary>Adds an initializer with a unique name derived from <paramref name="nameHint"/>.</summary>
    public Value AddInitializerUnique(string nameHint, TensorData data)
    {
        // NewValueName claims the name; AddInitializer claims it again for the new value, so hand it back first.
        var name = Names.NewValueName(nameHint);
        Names.ReleaseValueName(name);
        return AddInitializer(data.WithName(name));
    }

    /// <summary>Replaces the data of an existing initializer (same name).</summary>
    public void SetInitializer(Value value, TensorData data)
    {
        if (!value.IsInitializer) throw new InvalidOperationException($"'{value.Name}' is not an initializer.");
        value.Initializer = data.Name == value.Name ? data : data.WithName(value.Name);
        value.ElementType = data.ElementType;
        value.Shape = data.Shape;
    }

    /// <summary>Turns an initializer into a plain graph input (its data is dropped from the graph and returned).</summary>
    public TensorData PromoteInitializerToInput(Value value)
    {
        var data = value.Initializer ?? throw new InvalidOperationException($"'{value.Name}' is not an initializer.");
        _initializers.Remove(value.Name);
        value.Initializer = null;
        if (!InputsList.Contains(value)) InputsList.Add(value);
        return data;
    }

    /// <summary>Removes a graph input (not an initializer) that nothing reads any more.</summary>
    public void RemoveInput(Value value)
    {
        if (value.IsInitializer) throw new InvalidOperationException($"'{value.Name}' is an initializer; use RemoveInitializer.");
        if (value.Uses.Count > 0 || value.IsGraphOutput) throw new InvalidOperationException($"input '{value.Name}' is still used.");
        if (!InputsList.Remove(value)) throw new InvalidOperationException($"'{value.Name}' is not an input of graph '{Name}'.");
        _values.Remove(value.Name);
        Names.ReleaseValueName(value.Name);
    }

    /// <summary>Removes an initializer that nothing reads any more.</summary>
    public void RemoveInitializer(Value value)
    {
        if (value.Uses.Count > 0 || value.IsGraphOutput)
            throw new InvalidOperationException($"initializer '{value.Name}' is still used.");
        _initializers.Remove(value.Name);
        InputsList.Remove(value);
        _values.Remove(value.Name);
        Names.ReleaseValueName(value.Name);
    }

    /// <summary>Gives a value a new unique name derived from <paramref name="hint"/>; returns the name.</summary>
    public string RenameValueUnique(Value value, string hint)
    {
        var name = Names.NewValueName(hint);
        Rename(value, name);
        return name;
    }

    /// <summary>Gives a value a new (unused) name.</summary>
    public void RenameValue(Value value, string newName)
    {
        if (value.Name == newName) return;
        if (!Names.ClaimValueName(newName))
            throw new InvalidOperationException($"cannot rename '{value.Name}' to '{newName}': the name is taken.");
        Rename(value, newName);
    }

    private void Rename(Value value, string newName)
    {
        var owner = value.Graph;
        owner._values.Remove(value.Name);
        if (value.IsInitializer) owner._initializers.Remove(value.Name);
        Names.ReleaseValueName(value.Name);
        value.Name = newName;
        owner._values[newName] = value;
        if (value.Initializer is { } data)
        {
            data.Name = newName;
            owner._initializers[newName] = value;
        }
    }

    /// <summary>Marks a value as a graph output (no effect if it already is one).</summary>
    public void AddOutput(Value value)
    {
        if (!OutputsList.Contains(value)) OutputsList.Add(value);
    }

    /// <summary>Removes a value from the graph outputs.</summary>
    public bool RemoveOutput(Value value) => OutputsList.Remove(value);

    /// <summary>Replaces the output list entry <paramref name="index"/>.</summary>
    public void SetOutput(int index, Value value) => OutputsList[index] = value;

    /// <summary>
    /// Appends a node. Output values are created with unique names from <paramref name="outputNames"/>
    /// (hints, or exact names when <paramref name="exactOutputNames"/> is set).
    /// </summary>
    public Node AddNode(string opType, IEnumerable<Value?> inputs, IReadOnlyList<string> outputNames,
        IEnumerable<Attribute>? attributes = null, string name = "", string domain = "", bool exactOutputNames = false)
    {
        var node = NewNode(opType, name, domain);
        foreach (var v in inputs) node.AddInput(v);
        foreach (var o in outputNames) AttachOutput(node, exactOutputNames ? CreateValueExact(o) : CreateValue(o));
        if (attributes is not null) foreach (var a in attributes) node.Set(a);
        NodesList.Add(node);
        return node;
    }

    internal Node NewNode(string opType, string name, string domain)
    {
        if (name.Length > 0) Names.ClaimNodeName(name);
        return new Node(this, name, opType, domain);
    }

    internal void AppendNode(Node node) => NodesList.Add(node);

    internal static void AttachOutput(Node node, Value v)
    {
        if (v.Producer is not null) throw new OnnxFormatException($"value '{v.Name}' is produced by two nodes: '{v.Producer.Name}' and '{node.Name}'.");
        v.Producer = node;
        v.ProducerOutputIndex = node.OutputsList.Count;
        node.OutputsList.Add(v);
    }

    /// <summary>Removes a node whose outputs are unused; its inputs' use lists are updated.</summary>
    public void RemoveNode(Node node)
    {
        foreach (var o in node.Outputs)
            if (o.Uses.Count > 0 || o.IsGraphOutput)
                throw new InvalidOperationException($"cannot remove {node.Describe()}: its output '{o.Name}' is still used.");
        for (int i = 0; i < node.InputsList.Count; i++) node.SetInput(i, null);
        NodesList.Remove(node);
        foreach (var o in node.Outputs)
        {
            _values.Remove(o.Name);
            Names.ReleaseValueName(o.Name);
        }
    }

    /// <summary>
    /// Removes every node whose outputs are neither used nor graph outputs, repeatedly, so whole branches that nothing
    /// reads any more go. Graphs with subgraph attributes are left as they are (their reads are not tracked by use
    /// lists). Returns the number of nodes removed.
    /// </summary>
    public int RemoveUnusedNodes()
    {
        if (NodesList.Any(n => n.HasSubgraphs)) return 0;
        var order = TopologicalOrder();
        int removed = 0;
        for (int k = order.Count - 1; k >= 0; k--)
        {
            var n = order[k];
            if (n.Outputs.All(o => o.Uses.Count == 0 && !o.IsGraphOutput))
            {
                RemoveNode(n);
                removed++;
            }
        }
        return removed;
    }

    /// <summary>Points every use of <paramref name="old"/> (and graph output slots holding it) at <paramref name="replacement"/>.</summary>
    public void ReplaceAllUses(Value old, Value replacement)
    {
        foreach (var use in old.Uses.ToArray()) use.Node.SetInput(use.InputIndex, replacement);
        for (int i = 0; i < OutputsList.Count; i++)
            if (ReferenceEquals(OutputsList[i], old)) OutputsList[i] = replacement;
    }

    /// <summary>
    /// The nodes in a topological order (producers before consumers), stable with respect to the current order.
    /// Throws naming a node on a cycle.
    /// </summary>
    public IReadOnlyList<Node> TopologicalOrder()
    {
        var index = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < NodesList.Count; i++) index[NodesList[i]] = i;
        var pending = new int[NodesList.Count];
        var dependents = Enumerable.Range(0, NodesList.Count).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < NodesList.Count; i++)
        {
            foreach (var v in NodeReads(NodesList[i]).Distinct())
                if (v.Producer is { } p && index.TryGetValue(p, out int j) && j != i) { pending[i]++; dependents[j].Add(i); }
        }
        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < pending.Length; i++) if (pending[i] == 0) ready.Enqueue(i, i);
        var order = new List<Node>(NodesList.Count);
        while (ready.TryDequeue(out int i, out _))
        {
            order.Add(NodesList[i]);
            foreach (int d in dependents[i]) if (--pending[d] == 0) ready.Enqueue(d, d);
        }
        if (order.Count != NodesList.Count)
        {
            var stuck = NodesList.First(n => !order.Contains(n));
            throw new OnnxFormatException($"graph '{Name}' has a cycle through {stuck.Describe()}.");
        }
        return order;
    }

    /// <summary>Reorders <see cref="Nodes"/> topologically.</summary>
    public void SortTopologically()
    {
        var order = TopologicalOrder();
        NodesList.Clear();
        NodesList.AddRange(order);
    }

    /// <summary>The values a node reads, including values its subgraphs read from enclosing scopes.</summary>
    public static IEnumerable<Value> NodeReads(Node node)
    {
        foreach (var v in node.Inputs) if (v is not null) yield return v;
        foreach (var a in node.Attributes.Values)
        {
            var subs = a.Graph is not null ? [a.Graph] : a.Graphs;
            foreach (var g in subs)
                foreach (var v in g.OuterReads()) yield return v;
        }
    }

    /// <summary>Values of enclosing scopes that this graph (or its subgraphs) reads.</summary>
    public IEnumerable<Value> OuterReads() =>
        AllNodes().SelectMany(n => n.Inputs).OfType<Value>().Where(v => !IsInScope(v)).Distinct();

    private bool IsInScope(Value v)
    {
        for (var g = v.Graph; g is not null; g = g.Parent) if (g == this) return true;
        return false;
    }
}
