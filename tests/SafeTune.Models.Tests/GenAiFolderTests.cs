using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Chat;
using SafeTune.Models.Generation;
using SafeTune.Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Models.Tests;

/// <summary>What <see cref="GenAiFolder"/> writes, checked by structure: the files, the configuration, the graph's names.</summary>
public sealed class GenAiFolderTests
{
    [Fact]
    public void WritesConfigModelAndTokenizerFilesWithGenAisNames()
    {
        using var chat = new TinyChat();
        using var dir = new TempDir();
        var model = chat.Cached();
        model.MetadataProps.Add(new("hf_model_type", "qwen2"));
        var result = GenAiFolder.Write(model, chat.Folder, dir.File("out"), new GenAiFolderOptions { ContextLength = 96 });

        Assert.Equal(["genai_config.json", "model.onnx", "tokenizer.json", "tokenizer_config.json"],
            Directory.GetFiles(result.Directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var config = JsonDocument.Parse(File.ReadAllText(dir.File("out", "genai_config.json")));
        var m = config.RootElement.GetProperty("model");
        Assert.Equal("qwen2", m.GetProperty("type").GetString());
        Assert.Equal(96, m.GetProperty("context_length").GetInt32());
        Assert.Equal(chat.Tokenizer.VocabularySize, m.GetProperty("vocab_size").GetInt32());
        Assert.Equal(chat.Tokenizer.StopIds, m.GetProperty("eos_token_id").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(chat.Tokenizer.PadId, m.GetProperty("pad_token_id").GetInt32());
        var d = m.GetProperty("decoder");
        var c = chat.Config();
        Assert.Equal((c.Layers, c.Heads, c.KeyValueHeads, c.HeadDim, c.HiddenSize),
            (d.GetProperty("num_hidden_layers").GetInt32(), d.GetProperty("num_attention_heads").GetInt32(), d.GetProperty("num_key_value_heads").GetInt32(),
             d.GetProperty("head_size").GetInt32(), d.GetProperty("hidden_size").GetInt32()));
        Assert.Equal("model.onnx", d.GetProperty("filename").GetString());
        Assert.False(d.GetProperty("inputs").TryGetProperty("position_ids", out _));
        var search = config.RootElement.GetProperty("search");
        Assert.False(search.GetProperty("past_present_share_buffer").GetBoolean());
        Assert.False(search.GetProperty("do_sample").GetBoolean());
        Assert.Equal(96, search.GetProperty("max_length").GetInt32());

        // The names in the configuration are the graph's, as ONNX Runtime sees them.
        using var session = new InferenceSession(dir.File("out", "model.onnx"));
        var inputs = d.GetProperty("inputs");
        var outputs = d.GetProperty("outputs");
        var expectedInputs = new List<string> { inputs.GetProperty("input_ids").GetString()!, inputs.GetProperty("attention_mask").GetString()! };
        var expectedOutputs = new List<string> { outputs.GetProperty("logits").GetString()! };
        for (int i = 0; i < c.Layers; i++)
        {
            expectedInputs.Add(inputs.GetProperty("past_key_names").GetString()!.Replace("%d", i.ToString(), StringComparison.Ordinal));
            expectedInputs.Add(inputs.GetProperty("past_value_names").GetString()!.Replace("%d", i.ToString(), StringComparison.Ordinal));
            expectedOutputs.Add(outputs.GetProperty("present_key_names").GetString()!.Replace("%d", i.ToString(), StringComparison.Ordinal));
            expectedOutputs.Add(outputs.GetProperty("present_value_names").GetString()!.Replace("%d", i.ToString(), StringComparison.Ordinal));
        }
        Assert.Equal(expectedInputs.Order(StringComparer.Ordinal), session.InputMetadata.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(expectedOutputs.Order(StringComparer.Ordinal), session.OutputMetadata.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([-1, c.KeyValueHeads, -1, c.HeadDim], session.InputMetadata["past_key_values.0.key"].Dimensions);

        using var tokenizerConfig = JsonDocument.Parse(File.ReadAllText(dir.File("out", "tokenizer_config.json")));
        Assert.Contains("<|im_start|>", tokenizerConfig.RootElement.GetProperty("chat_template").GetString(), StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(chat.TokenizerPath), File.ReadAllBytes(dir.File("out", "tokenizer.json")));
        Assert.Equal([dir.File("out")], Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AddsTheChosenTemplateWhenTheTokenizerHasNone()
    {
        using var chat = new TinyChat();
        using var dir = new TempDir();
        File.Delete(Path.Combine(chat.Folder, "tokenizer_config.json"));
        var result = GenAiFolder.Write(chat.Cached(), chat.TokenizerPath, dir.File("out"),
            new GenAiFolderOptions { ContextLength = 64, Template = ChatTemplates.Phi3 });
        Assert.True(result.HasChatTemplate);
        using var config = JsonDocument.Parse(File.ReadAllText(dir.File("out", "tokenizer_config.json")));
        Assert.Equal(((BuiltInChatTemplate)ChatTemplates.Phi3).Jinja, config.RootElement.GetProperty("chat_template").GetString());
        Assert.Equal("llama", result.ModelType);
    }

    [Theory]
    [InlineData("chatml")]
    [InlineData("llama3")]
    [InlineData("phi3")]
    [InlineData("plain")]
    public void BuiltInTemplatesRenderTheSameInJinja(string name)
    {
        var builtIn = (BuiltInChatTemplate)ChatTemplates.ByName(name);
        var jinja = new JinjaChatTemplate(builtIn.Jinja, name);
        ChatMessage[] conversation = [ChatMessage.System("Be brief."), ChatMessage.User("Hi there"), ChatMessage.Assistant("Hello."), ChatMessage.User("Bye")];
        Assert.Equal(builtIn.RenderPrompt(conversation), jinja.RenderPrompt(conversation));
    }

    [Fact]
    public void RefusesAPlainGraphAndAFolderInTheWay()
    {
        using var chat = new TinyChat();
        using var dir = new TempDir();
        var plain = Assert.Throws<InvalidDataException>(() => GenAiFolder.Write(chat.Plain(), chat.TokenizerPath, dir.File("a"), new() { ContextLength = 64 }));
        Assert.Contains("attention_mask", plain.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File("a")));

        Directory.CreateDirectory(dir.File("busy"));
        File.WriteAllText(dir.File("busy", "notes.txt"), "keep");
        var busy = Assert.Throws<InvalidDataException>(() => GenAiFolder.Write(chat.Cached(), chat.TokenizerPath, dir.File("busy"), new() { ContextLength = 64 }));
        Assert.Contains("not a GenAI model folder", busy.Message, StringComparison.Ordinal);
        Assert.Equal("keep", File.ReadAllText(dir.File("busy", "notes.txt")));

        // An earlier GenAI folder is replaced as a whole.
        GenAiFolder.Write(chat.Cached(), chat.TokenizerPath, dir.File("g"), new() { ContextLength = 64 });
        File.WriteAllText(dir.File("g", "stale.txt"), "old");
        GenAiFolder.Write(chat.Cached(), chat.TokenizerPath, dir.File("g"), new() { ContextLength = 32 });
        Assert.False(File.Exists(dir.File("g", "stale.txt")));
        Assert.Contains("\"context_length\": 32", File.ReadAllText(dir.File("g", "genai_config.json")), StringComparison.Ordinal);
    }
}
