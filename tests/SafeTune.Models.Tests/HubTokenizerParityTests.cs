using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.TestSupport;
using Xunit;

namespace SafeTune.Models.Tests;

/// <summary>
/// Real Hub tokenizer.json files against transformers.js on SafeTune's stress corpus
/// (tests/fixtures/make_tokenizers.mjs writes tests/fixtures/tokenizers/hub/&lt;family&gt;/expected.json).
/// </summary>
public sealed class HubTokenizerParityTests
{
    public static TheoryData<string> Families()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Repo.Fixture("tokenizers", "hub")).Order(StringComparer.Ordinal))
            if (File.Exists(Path.Combine(dir, "expected.json"))) data.Add(Path.GetFileName(dir));
        return data;
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Encodes_and_decodes_the_stress_corpus_exactly_as_transformers_js(string family)
    {
        var dir = Repo.Fixture("tokenizers", "hub", family);
        var tokenizer = TokenizerLoader.Load(dir);
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        var failures = new List<string>();
        var rows = 0;
        foreach (var row in expected.RootElement.GetProperty("rows").EnumerateArray())
        {
            rows++;
            var text = row.GetProperty("text").GetString()!;
            var ids = Ints(row.GetProperty("ids"));
            var idsNoSpecial = Ints(row.GetProperty("ids_no_special"));
            Check("ids", ids, tokenizer.Encode(text, addSpecialTokens: true));
            Check("ids_no_special", idsNoSpecial, tokenizer.Encode(text, addSpecialTokens: false));
            Check("decoded", row.GetProperty("decoded").GetString(), tokenizer.Decode(idsNoSpecial));
            Check("decoded_skip", row.GetProperty("decoded_skip").GetString(), tokenizer.Decode(ids, skipSpecialTokens: true));

            void Check<T>(string what, T want, T got)
            {
                var w = JsonSerializer.Serialize(want);
                var g = JsonSerializer.Serialize(got);
                if (w != g) failures.Add($"{what} of {JsonSerializer.Serialize(text)}:\n  expected {w}\n  actual   {g}");
            }
        }
        Assert.True(rows >= 150, $"{family}: only {rows} strings");
        Assert.True(failures.Count == 0, $"{family}: {failures.Count} mismatches\n" + string.Join("\n", failures.Take(12)));
    }

    [Fact]
    public void Known_ids_of_real_tokenizers()
    {
        // GPT-2's ids for "Hello world" are well known; TinyLlama's template text needs bos from its post-processor.
        Assert.Equal([15496, 995], TokenizerLoader.Load(Repo.Fixture("tokenizers", "hub", "gpt2")).Encode("Hello world", addSpecialTokens: true));
        var tinyLlama = TokenizerLoader.Load(Repo.Fixture("tokenizers", "hub", "tinyllama"));
        Assert.Equal(TokenizerKind.SentencePiece, tinyLlama.Kind);
        var ids = tinyLlama.Encode("<|user|>\nHi</s>", addSpecialTokens: true);
        Assert.Equal(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal("<s>", tinyLlama.IdToToken(1));
        Assert.Equal("<|user|>\nHi", tinyLlama.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void A_models_own_template_tokenizes_as_apply_chat_template_does()
    {
        // TinyLlama's tokenizer_config.json carries its chat template; transformers.js's apply_chat_template ids are in
        // the fixture, for the prompt (add_generation_prompt) and for the conversation with the response appended.
        var dir = Repo.Fixture("tokenizers", "hub", "tinyllama");
        var tokenizer = TokenizerLoader.Load(dir);
        var template = Assert.IsType<JinjaChatTemplate>(ChatTemplates.FromTokenizerConfig(dir));
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        var chats = expected.RootElement.GetProperty("chats").EnumerateArray().ToList();
        Assert.NotEmpty(chats);
        foreach (var chat in chats)
        {
            var messages = chat.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
            var tokenized = template.Tokenize(tokenizer, messages, chat.GetProperty("response").GetString()!);
            var promptIds = Ints(chat.GetProperty("prompt_ids"));
            Assert.Equal(Ints(chat.GetProperty("full_ids")), tokenized.Ids);
            Assert.Equal(promptIds.Length, tokenized.PromptLength);
            Assert.Equal(promptIds, tokenized.Ids[..tokenized.PromptLength]);
            var labels = tokenized.Labels();
            Assert.All(labels[..(tokenized.PromptLength - 1)], l => Assert.Equal(ChatTemplate.IgnoreIndex, l));
            Assert.Equal(tokenized.Ids[tokenized.PromptLength], labels[tokenized.PromptLength - 1]);
        }
    }

    [Theory]
    [InlineData("NFC")]
    [InlineData("NFD")]
    [InlineData("NFKC")]
    [InlineData("NFKD")]
    public void Unicode_normalizers_normalize_as_transformers_js_does(string form)
    {
        // tests/fixtures/make_normalizers.mjs: stories260k's tokenizer.json with the form first in its normalizer Sequence.
        using var dir = new TempDir();
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Repo.Fixture("tokenizers", "hub", "stories260k", "tokenizer.json")))!;
        var normalizers = json["normalizer"]!["normalizers"]!.AsArray();
        normalizers.Insert(0, new System.Text.Json.Nodes.JsonObject { ["type"] = form });
        File.WriteAllText(dir.File("tokenizer.json"), json.ToJsonString());
        File.Copy(Repo.Fixture("tokenizers", "hub", "stories260k", "tokenizer_config.json"), dir.File("tokenizer_config.json"));
        var tokenizer = TokenizerLoader.Load(dir.Path);
        using var expected = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("tokenizers", "normalizers.json")));
        var strings = expected.RootElement.GetProperty("strings").EnumerateArray().Select(x => x.GetString()!).ToList();
        var rows = expected.RootElement.GetProperty("forms").GetProperty(form).EnumerateArray().ToList();
        Assert.Equal(strings.Count, rows.Count);
        for (int i = 0; i < strings.Count; i++)
        {
            var ids = Ints(rows[i].GetProperty("ids"));
            Assert.Equal(ids, tokenizer.Encode(strings[i], addSpecialTokens: false));
            Assert.Equal(rows[i].GetProperty("decoded").GetString(), tokenizer.Decode(ids));
        }
        // The compatibility forms change what is tokenized: the ligature "fi" is two letters, not its UTF-8 bytes.
        if (form.StartsWith("NFK", StringComparison.Ordinal)) Assert.StartsWith("fine flow", tokenizer.Decode(tokenizer.Encode("\ufb01ne \ufb02ow", addSpecialTokens: false)));
    }

    [Fact]
    public void At_least_five_families_are_checked()
    {
        Assert.True(Families().Count >= 5, $"{Families().Count} families");
    }

    private static int[] Ints(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetInt32())];
}
