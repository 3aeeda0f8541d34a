using System.Diagnostics;
using Google.Protobuf;
using Onnx;

namespace SafeTune.TestSupport;

/// <summary>Builders for hostile inputs: models whose external data points anywhere, and named pipes.</summary>
public static class HostileFiles
{
    /// <summary>
    /// Writes a one-node model (<c>y = x + NAME</c>) whose float initializer <paramref name="tensor"/> of <paramref name="dims"/>
    /// is read from <paramref name="location"/>, with an offset and a length when they are given.
    /// </summary>
    public static void ModelWithExternal(string path, string tensor, string location, long[] dims, long? offset = null, long? length = null)
    {
        var w = new TensorProto { Name = tensor, DataType = 1, DataLocation = TensorProto.Types.DataLocation.External };
        w.Dims.Add(dims);
        w.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        if (offset is { } o) w.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = o.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        if (length is { } l) w.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = l.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var g = new GraphProto { Name = "g" };
        g.Initializer.Add(w);
        g.Input.Add(new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        g.Node.Add(new NodeProto { OpType = "Add", Input = { "x", tensor }, Output = { "y" } });
        g.Output.Add(new ValueInfoProto { Name = "y" });
        var m = new ModelProto { IrVersion = 8, Graph = g };
        m.OpsetImport.Add(new OperatorSetIdProto { Version = 17 });
        File.WriteAllBytes(path, m.ToByteArray());
    }

    /// <summary>Creates a named pipe (FIFO) at <paramref name="path"/> with <c>mkfifo</c>.</summary>
    public static void MakeFifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("mkfifo did not start.");
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"mkfifo {path} failed with exit code {p.ExitCode}.");
    }
}
