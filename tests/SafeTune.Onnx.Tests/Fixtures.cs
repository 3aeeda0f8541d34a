using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

/// <summary>The torch.onnx decoder fixtures and what the onnx Python package says about them.</summary>
internal static class Fixtures
{
    public static readonly string[] Decoders = ["gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded"];

    public static TheoryData<string> DecoderNames() => [.. Decoders];

    public static string ModelPath(string name) => Repo.Fixture("models", name + ".onnx");

    public static JsonElement Expected(string name) =>
        JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", name + ".expected.json"))).RootElement;
}
