using Google.Protobuf;
using Onnx;

namespace SafeTune.Onnx;

/// <summary>Resolves the data of tensors stored outside the protobuf.</summary>
internal interface IExternalTensors
{
    /// <summary>The tensor an external-data protobuf stands for.</summary>
    TensorData Read(TensorProto proto);
}

/// <summary>Reads ONNX protobuf into the IR, validating enough that every later step can trust the graph's wiring.</summary>
internal static class ModelReader
{
    private const long MaxIrVersion = 13;

    public static Model Load(string path)
    {
        if (Directory.Exists(path)) throw new OnnxFormatException($"{path}: is a folder, not an ONNX model file.");
        if (!File.Exists(path)) throw new OnnxFormatException($"{path}: file not found.");
        var kind = SafePaths.KindOf(path);
        if (kind != FileKind.Regular) throw new OnnxFormatException($"{path}: is {SafePaths.Describe(kind)}, not a regular file; only regular files are read.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new OnnxFormatException($"{path}: cannot read the file ({e.Message}).", e); }
        return Parse(bytes, Path.GetDirectoryName(Path.GetFullPath(path))!, path);
    }

    public static Model Parse(ReadOnlySpan<byte> bytes, string? baseDirectory, string displayName)
    {
        if (bytes.Length == 0) throw new OnnxFormatException($"{displayName}: the file is empty, not an ONNX model.");
        ModelProto proto;
        try { proto = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            var reason = e.Message.Split('.', 2)[0].Trim();
            throw new OnnxFormatException($"{displayName}: not a valid ONNX model: the protobuf is truncated or corrupt ({reason}).", e);
        }
        try
        {
            using var external = baseDirectory is null ? null : new ExternalDataReader(baseDirectory);
            return FromProto(proto, external);
        }
        catch (OnnxFormatException e)
        {
            throw new OnnxFormatException($"{displayName}: {e.Message}", e);
        }
    }

    public static Model FromProto(ModelProto proto, IExternalTensors? external)
    {
        if (proto.IrVersion <= 0 || proto.Graph is null)
            throw new OnnxFormatException(proto.Graph is null
                ? "not an ONNX model: it has no graph (the file is truncated or is some other protobuf)."
                : $"not an ONNX model: ir_version {proto.IrVersion} is not valid.");
        if (proto.IrVersion > MaxIrVersion)
            throw new OnnxFormatException($"ir_version {proto.IrVersion} is newer than this reader supports (up to {MaxIrVersion}).");
        if (proto.OpsetImport.Count == 0)
            throw new OnnxFormatException("the model imports no operator set (opset_import is empty; the file may be truncated).");

        var graph = new Graph(proto.Graph.Name);
        var model = new Model(graph)
        {
            IrVersion = proto.IrVersion,
            ProducerName = proto.ProducerName,
            ProducerVersion = proto.ProducerVersion,
            Domain = proto.Domain,
            ModelVersion = proto.ModelVersion,
            DocString = proto.DocString,
        };
        foreach (var o in proto.OpsetImport) model.Opsets[o.Domain == "ai.onnx" ? "" : o.Domain] = o.Version;
        foreach (var m in proto.MetadataProps) model.MetadataProps.Add(new(m.Key, m.Value));
        model.Functions.AddRange(proto.Functions);
        model.TrainingInfo.AddRange(proto.TrainingInfo);
        ReadGraph(proto.Graph, graph, external);
        if (graph.Outputs.Count == 0)
            throw new OnnxFormatException($"graph '{graph.Name}' has no outputs (the file may be truncated).");
        return model;
    }

    private static void ReadGraph(GraphProto gp, Graph graph, IExternalTensors? external)
    {
        graph.DocString = gp.DocString;
        foreach (var m in gp.MetadataProps) graph.MetadataProps.Add(new(m.Key, m.Value));
        foreach (var t in gp.Initializer)
        {
            if (string.IsNullOrEmpty(t.Name)) throw new OnnxFormatException($"graph '{graph.Name}' has an initializer without a name.");
            ((ElementType)t.DataType).CheckedStorageBytes(t.Dims, t.Name);
            graph.AddInitializer(TensorData.FromProto(t, external));
        }
        if (gp.SparseInitializer.Count > 0)
            throw new OnnxFormatException($"graph '{graph.Name}' has sparse initializers ('{gp.SparseInitializer[0].Values?.Name}'), which are not supported.");
        foreach (var i in gp.Input)
        {
            var v = graph.AddInput(i.Name, ElementType.Undefined, null);
            ApplyType(v, i);
        }

        // Outputs of every node first, so that nodes may appear in any order and subgraphs may read later values.
        var nodes = new List<(NodeProto proto, Node node)>(gp.Node.Count);
        foreach (var np in gp.Node)
        {
            var node = graph.NewNode(np.OpType, np.Name, np.Domain == "ai.onnx" ? "" : np.Domain);
            node.Overload = np.Overload;
            node.DocString = np.DocString;
            foreach (var m in np.MetadataProps) node.MetadataProps.Add(new(m.Key, m.Value));
            foreach (var o in np.Output)
            {
                if (o.Length == 0)
                {
                    // An omitted optional output: give it a private name so the node keeps its output arity.
                    Graph.AttachOutput(node, graph.CreateValue($"{(np.Name.Length > 0 ? np.Name : np.OpType)}_unused"));
                    continue;
                }
                var existing = graph.FindValue(o);
                if (existing is not null && existing.Graph == graph && existing.Producer is null && !existing.IsInitializer && !existing.IsGraphInput)
                    Graph.AttachOutput(node, existing);
                else
                    Graph.AttachOutput(node, graph.CreateValueExact(o));
            }
            nodes.Add((np, node));
            graph.AppendNode(node);
        }
        foreach (var vi in gp.ValueInfo)
            if (graph.FindValue(vi.Name) is { } v && v.Graph == graph) ApplyType(v, vi);

        foreach (var (np, node) in nodes)
        {
            foreach (var a in np.Attribute) node.Set(ReadAttribute(a, graph, external, node));
            foreach (var name in np.Input)
            {
                if (name.Length == 0) { node.AddInput(null); continue; }
                var v = graph.FindValue(name)
                    ?? throw new OnnxFormatException($"{node.Describe()} reads '{name}', which no node, input or initializer defines.");
                node.AddInput(v);
            }
        }
        foreach (var o in gp.Output)
        {
            var v = graph.FindValue(o.Name)
                ?? throw new OnnxFormatException($"graph output '{o.Name}' is not defined by any node, input or initializer.");
            if (v.ElementType == ElementType.Undefined || v.Shape is null) ApplyType(v, o);
            v.DocString = o.DocString;
            graph.AddOutput(v);
        }
    }

    private static Attribute ReadAttribute(AttributeProto a, Graph graph, IExternalTensors? external, Node node)
    {
        var kind = (AttributeKind)a.Type;
        if (kind == AttributeKind.Undefined) kind = InferKind(a);
        Graph Sub(GraphProto g)
        {
            var sub = graph.CreateSubgraph(g.Name);
            ReadGraph(g, sub, external);
            return sub;
        }
        return kind switch
        {
            AttributeKind.Float => new Attribute { Name = a.Name, Kind = kind, Float = a.F, DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Int => new Attribute { Name = a.Name, Kind = kind, Int = a.I, DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.String => new Attribute { Name = a.Name, Kind = kind, Bytes = a.S.ToByteArray(), DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Tensor => new Attribute { Name = a.Name, Kind = kind, Tensor = TensorData.FromProto(a.T, external), DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Graph => new Attribute { Name = a.Name, Kind = kind, Graph = Sub(a.G), DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Floats => new Attribute { Name = a.Name, Kind = kind, Floats = [.. a.Floats], DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Ints => new Attribute { Name = a.Name, Kind = kind, Ints = [.. a.Ints], DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Strings => new Attribute { Name = a.Name, Kind = kind, ByteStrings = [.. a.Strings.Select(s => s.ToByteArray())], DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Tensors => new Attribute { Name = a.Name, Kind = kind, Tensors = [.. a.Tensors.Select(t => TensorData.FromProto(t, external))], DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.Graphs => new Attribute { Name = a.Name, Kind = kind, Graphs = [.. a.Graphs.Select(Sub)], DocString = a.DocString, RefAttrName = a.RefAttrName },
            AttributeKind.SparseTensor or AttributeKind.SparseTensors or AttributeKind.TypeProto or AttributeKind.TypeProtos =>
                new Attribute { Name = a.Name, Kind = kind, Opaque = a, DocString = a.DocString, RefAttrName = a.RefAttrName },
            _ => throw new OnnxFormatException($"{node.Describe()}: attribute '{a.Name}' has unknown type {a.Type}."),
        };
    }

    private static AttributeKind InferKind(AttributeProto a) =>
        a.G is not null ? AttributeKind.Graph
        : a.T is not null ? AttributeKind.Tensor
        : a.Graphs.Count > 0 ? AttributeKind.Graphs
        : a.Tensors.Count > 0 ? AttributeKind.Tensors
        : a.Floats.Count > 0 ? AttributeKind.Floats
        : a.Ints.Count > 0 ? AttributeKind.Ints
        : a.Strings.Count > 0 ? AttributeKind.Strings
        : !a.S.IsEmpty ? AttributeKind.String
        : a.F != 0 ? AttributeKind.Float
        : AttributeKind.Int;

    internal static void ApplyType(Value v, ValueInfoProto vi)
    {
        if (vi.DocString.Length > 0) v.DocString = vi.DocString;
        var t = vi.Type;
        if (t is null) return;
        if (t.ValueCase != TypeProto.ValueOneofCase.TensorType)
        {
            v.NonTensorType = t;
            return;
        }
        v.ElementType = (ElementType)t.TensorType.ElemType;
        var s = t.TensorType.Shape;
        if (s is null) return;
        v.Shape = new Shape(s.Dim.Select(d => d.ValueCase switch
        {
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue => Dim.Of(d.DimValue),
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam => Dim.Symbol(d.DimParam),
            _ => Dim.Unknown,
        }));
    }
}
