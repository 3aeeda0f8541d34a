using Google.Protobuf;
using Onnx;

namespace SafeTune.Onnx;

/// <summary>Writes the IR as ONNX protobuf, optionally moving large tensors to an external data file.</summary>
internal static class ModelWriter
{
    /// <summary>Protobuf messages cannot exceed 2 GiB; stay clear of it.</summary>
    private const long InlineLimit = (2L << 30) - (64L << 20);

    public static void Save(Model model, string path, SaveOptions options)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string? dataFile = options.ExternalDataFile;
        if (dataFile is null && options.ExternalDataWhenLarge && InitializerBytes(model.Graph) > Math.Min(options.ExternalDataAbove, InlineLimit))
            dataFile = Path.GetFileName(full) + ".data";
        if (dataFile is not null && (dataFile.Contains('/') || dataFile.Contains('\\') || dataFile is "." or ".."))
            throw new UserInputException($"external data file '{dataFile}' must be a plain file name next to the model.");

        if (dataFile is null)
        {
            AtomicFile.Write(full, s => ToProto(model, null).WriteTo(s));
            return;
        }
        var dataPath = Path.Combine(dir, dataFile);
        ModelProto? proto = null;
        AtomicFile.Write(dataPath, s =>
        {
            using var sink = new ExternalDataSink(s, dataFile, options.ExternalDataThreshold, options.ExternalDataAlignment);
            proto = ToProto(model, sink);
        });
        AtomicFile.Write(full, s => proto!.WriteTo(s));
    }

    private static long InitializerBytes(Graph g) => g.Initializers.Sum(v => v.Initializer!.ByteCount);

    public static ModelProto ToProto(Model model, ITensorSink? sink)
    {
        var p = new ModelProto
        {
            IrVersion = model.IrVersion,
            ProducerName = model.ProducerName,
            ProducerVersion = model.ProducerVersion,
            Domain = model.Domain,
            ModelVersion = model.ModelVersion,
            DocString = model.DocString,
            Graph = WriteGraph(model.Graph, sink),
        };
        foreach (var (d, v) in model.Opsets) p.OpsetImport.Add(new OperatorSetIdProto { Domain = d, Version = v });
        foreach (var m in model.MetadataProps) p.MetadataProps.Add(new StringStringEntryProto { Key = m.Key, Value = m.Value });
        p.Functions.AddRange(model.Functions);
        p.TrainingInfo.AddRange(model.TrainingInfo);
        return p;
    }

    private static GraphProto WriteGraph(Graph g, ITensorSink? sink)
    {
        var gp = new GraphProto { Name = g.Name, DocString = g.DocString };
        foreach (var m in g.MetadataProps) gp.MetadataProps.Add(new StringStringEntryProto { Key = m.Key, Value = m.Value });
        foreach (var v in g.Initializers) gp.Initializer.Add(sink is null ? v.Initializer!.ToProto() : sink.Write(v.Initializer!));
        foreach (var v in g.Inputs) gp.Input.Add(ValueInfo(v));
        foreach (var n in g.Nodes)
        {
            var np = new NodeProto { OpType = n.OpType, Domain = n.Domain, Name = n.Name, Overload = n.Overload, DocString = n.DocString };
            // Omitted optional inputs at the end are dropped: same meaning, and ONNX Runtime 1.31 crashes on some
            // (LayerNormalization with an explicit empty bias).
            int inputCount = n.Inputs.Count;
            while (inputCount > 0 && n.Inputs[inputCount - 1] is null) inputCount--;
            np.Input.AddRange(n.Inputs.Take(inputCount).Select(v => v?.Name ?? ""));
            np.Output.AddRange(n.Outputs.Select(v => v.Uses.Count == 0 && !v.IsGraphOutput && v.Name.EndsWith("_unused", StringComparison.Ordinal) && IsOmitted(v) ? "" : v.Name));
            foreach (var a in n.Attributes.Values) np.Attribute.Add(WriteAttribute(a, sink));
            foreach (var m in n.MetadataProps) np.MetadataProps.Add(new StringStringEntryProto { Key = m.Key, Value = m.Value });
            gp.Node.Add(np);
            foreach (var o in n.Outputs)
                if (!o.IsGraphOutput && (o.ElementType != ElementType.Undefined || o.NonTensorType is not null) && np.Output.Contains(o.Name))
                    gp.ValueInfo.Add(ValueInfo(o));
        }
        foreach (var v in g.Outputs) gp.Output.Add(ValueInfo(v));
        return gp;
    }

    // Optional outputs the reader had to name are written back as omitted; they carry no type of their own.
    private static bool IsOmitted(Value v) => v.ElementType == ElementType.Undefined && v.Shape is null;

    private static AttributeProto WriteAttribute(Attribute a, ITensorSink? sink)
    {
        if (a.Opaque is not null) return a.Opaque;
        var p = new AttributeProto { Name = a.Name, Type = (AttributeProto.Types.AttributeType)(int)a.Kind, DocString = a.DocString, RefAttrName = a.RefAttrName };
        switch (a.Kind)
        {
            case AttributeKind.Float: p.F = a.Float; break;
            case AttributeKind.Int: p.I = a.Int; break;
            case AttributeKind.String: p.S = ByteString.CopyFrom(a.Bytes); break;
            case AttributeKind.Tensor: p.T = a.Tensor!.ToProto(); break;
            case AttributeKind.Graph: p.G = WriteGraph(a.Graph!, sink); break;
            case AttributeKind.Floats: p.Floats.AddRange(a.Floats); break;
            case AttributeKind.Ints: p.Ints.AddRange(a.Ints); break;
            case AttributeKind.Strings: p.Strings.AddRange(a.ByteStrings.Select(ByteString.CopyFrom)); break;
            case AttributeKind.Tensors: p.Tensors.AddRange(a.Tensors.Select(t => t.ToProto())); break;
            case AttributeKind.Graphs: p.Graphs.AddRange(a.Graphs.Select(g => WriteGraph(g, sink))); break;
        }
        return p;
    }

    internal static ValueInfoProto ValueInfo(Value v)
    {
        var vi = new ValueInfoProto { Name = v.Name, DocString = v.DocString };
        if (v.NonTensorType is not null) { vi.Type = v.NonTensorType; return vi; }
        if (v.ElementType == ElementType.Undefined && v.Shape is null) return vi;
        var tt = new TypeProto.Types.Tensor { ElemType = (int)v.ElementType };
        if (v.Shape is not null)
        {
            tt.Shape = new TensorShapeProto();
            foreach (var d in v.Shape.Dims)
            {
                var dim = new TensorShapeProto.Types.Dimension();
                if (d.Value is { } n) dim.DimValue = n;
                else if (d.Param is { } s) dim.DimParam = s;
                tt.Shape.Dim.Add(dim);
            }
        }
        vi.Type = new TypeProto { TensorType = tt };
        return vi;
    }
}

/// <summary>Where the writer puts each initializer's data: inline, in an external file, or shared with a copy.</summary>
internal interface ITensorSink
{
    /// <summary>The protobuf that stands for <paramref name="t"/> in the written graph.</summary>
    TensorProto Write(TensorData t);
}

/// <summary>Collects large tensors into one external data file, aligned, and returns protobuf stubs pointing at them.</summary>
internal sealed class ExternalDataSink(Stream stream, string location, long threshold, int alignment) : ITensorSink, IDisposable
{
    public TensorProto Write(TensorData t)
    {
        long length = t.ByteCount;
        if (t.ElementType == ElementType.String || length < threshold) return t.ToProto();
        long pad = (alignment - stream.Position % alignment) % alignment;
        for (long i = 0; i < pad; i++) stream.WriteByte(0);
        long offset = stream.Position;
        t.WriteTo(stream);
        if (stream.Position - offset != length)
            throw new InvalidDataException($"tensor '{t.Name}': {stream.Position - offset} bytes were written where {length} were expected.");
        var p = new TensorProto { Name = t.Name, DataType = (int)t.ElementType, DataLocation = TensorProto.Types.DataLocation.External };
        p.Dims.AddRange(t.Dims);
        p.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        p.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        p.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return p;
    }

    public void Dispose() => stream.Flush();
}

/// <summary>
/// Writes stubs that name the tensors themselves, so that <see cref="ModelReader"/> can rebuild a copy of the graph whose
/// initializers share the original bytes (<see cref="Model.Clone"/>): no tensor is serialized.
/// </summary>
internal sealed class SharingSink : ITensorSink, IExternalTensors
{
    private const string Location = "\0shared";
    private readonly List<TensorData> _tensors = [];

    public TensorProto Write(TensorData t)
    {
        var p = new TensorProto { Name = t.Name, DataType = (int)t.ElementType, DataLocation = TensorProto.Types.DataLocation.External };
        p.Dims.AddRange(t.Dims);
        p.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = Location });
        p.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = _tensors.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        _tensors.Add(t);
        return p;
    }

    public TensorData Read(TensorProto proto)
    {
        var index = int.Parse(proto.ExternalData.First(e => e.Key == "offset").Value, System.Globalization.CultureInfo.InvariantCulture);
        return _tensors[index].WithName(proto.Name);
    }
}
