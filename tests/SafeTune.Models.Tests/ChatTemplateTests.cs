using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.TestSupport;
using Xunit;

namespace SafeTune.Models.Tests;

public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation = [ChatMessage.System("Be brief."), ChatMessage.User("Hi there")];

    public static TheoryData<string, string, string> Expected => new()
    {
        {
            "chatml",
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
            "Hello!<|im_end|>\n"
        },
        {
            "llama3",
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            "Hello!<|eot_id|>"
        },
        {
            "phi3",
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n",
            "Hello!<|end|>\n"
        },
        {
            "plain",
            "System: Be brief.\nUser: Hi there\nAssistant: ",
            "Hello!\n"
        },
    };

    [Theory]
    [MemberData(nameof(Expected))]
    public void RendersSystemAndUserConversation(string name, string prompt, string response)
    {
        var template = ChatTemplates.ByName(name);
        Assert.Equal(name, template.Name);
        Assert.Equal(prompt, template.RenderPrompt(Conversation));
        Assert.Equal(prompt + response, template.Render(Conversation, "Hello!"));
    }

    [Theory]
    [InlineData("chatml")]
    [InlineData("llama3")]
    [InlineData("phi3")]
    [InlineData("plain")]
    public void PromptResponseBoundaryIsExact(string name)
    {
        var template = ChatTemplates.ByName(name);
        foreach (var tokenizer in new[] { TokenizerLoader.Load(Repo.Fixture("tokenizers", "tiny-bpe")), TokenizerLoader.Load("gpt2") })
        {
            var (ids, promptLength) = template.Tokenize(tokenizer, Conversation, "hello world, naïve café");
            var prompt = tokenizer.Encode(template.RenderPrompt(Conversation));
            Assert.Equal(prompt, ids[..promptLength]);
            Assert.True(ids.Length > promptLength);
            Assert.Equal(template.Render(Conversation, "hello world, naïve café"), tokenizer.Decode(ids));

            var labels = ChatTemplate.Labels(ids, promptLength);
            Assert.Equal(ids.Length, labels.Length);
            for (var t = 0; t < ids.Length; t++)
            {
                var expected = t + 1 >= promptLength && t + 1 < ids.Length ? ids[t + 1] : ChatTemplate.IgnoreIndex;
                Assert.Equal(expected, labels[t]);
            }
            // Masked exactly where the next token is a prompt token (and at the end).
            Assert.All(labels[..(promptLength - 1)], l => Assert.Equal(ChatTemplate.IgnoreIndex, l));
            Assert.Equal(ids[promptLength], labels[promptLength - 1]);
            Assert.Equal(ChatTemplate.IgnoreIndex, labels[^1]);
            Assert.Equal(labels, new TokenizedChat(ids, promptLength).Labels());
        }
    }

    [Fact]
    public void ChatMlSpecialTokensAreSingleIdsAtTheBoundary()
    {
        var tokenizer = TokenizerLoader.Load(Repo.Fixture("tokenizers", "tiny-bpe"));
        var (ids, promptLength) = ChatTemplates.ChatMl.Tokenize(tokenizer, [ChatMessage.User("hello")], "hello");
        Assert.Equal(264, ids[0]);
        Assert.Equal(tokenizer.Encode("\n")[0], ids[promptLength - 1]);
        Assert.Equal(259, ids[promptLength]);
        Assert.Equal(265, ids[promptLength + 1]);
        // Here the joint tokenization agrees with the split one.
        Assert.Equal(tokenizer.Encode(ChatTemplates.ChatMl.Render([ChatMessage.User("hello")], "hello")), ids);
    }

    [Fact]
    public void LabelsEdgeCases()
    {
        Assert.Equal([-100, 7, 8, -100], ChatTemplate.Labels([5, 6, 7, 8], 2));
        Assert.Equal([6, 7, -100], ChatTemplate.Labels([5, 6, 7], 0));
        Assert.Equal([-100, -100], ChatTemplate.Labels([5, 6], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChatTemplate.Labels([5], 2));
    }

    [Theory]
    [InlineData("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}", "chatml")]
    [InlineData("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}", "llama3")]
    [InlineData("{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}", "phi3")]
    [InlineData("{% for message in messages %}{{ message['content'] }}{% endfor %}", "plain")]
    public void DetectsTheClosestBuiltInTemplate(string chatTemplate, string expected)
    {
        Assert.Equal(expected, ChatTemplates.Detect(chatTemplate).Name);
    }

    [Fact]
    public void A_models_own_template_wins_over_the_built_ins()
    {
        using var dir = new TempDir();
        var path = dir.File("tokenizer_config.json");
        const string template = "{{ bos_token }}{% for m in messages %}{{ m.role | upper }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(new { chat_template = template, bos_token = new { content = "<s>" }, eos_token = "</s>" }));
        foreach (var spec in new[] { path, dir.Path })
        {
            var t = Assert.IsType<JinjaChatTemplate>(ChatTemplates.FromTokenizerConfig(spec));
            Assert.Equal("<s>USER: Hi\nASSISTANT:", t.RenderPrompt([ChatMessage.User("Hi")]));
            Assert.Contains("tokenizer_config.json", t.Name, StringComparison.Ordinal);
        }

        // chat_template.json beats tokenizer_config.json, and chat_template.jinja beats both.
        File.WriteAllText(dir.File("chat_template.json"), "{\"chat_template\": \"json:{{ messages[0].content }}\"}");
        Assert.Equal("json:Hi", ChatTemplates.FromTokenizerConfig(dir.Path).RenderPrompt([ChatMessage.User("Hi")]));
        File.WriteAllText(dir.File("chat_template.jinja"), "jinja:{{ messages[0].content }}\n");
        Assert.Equal("jinja:Hi", ChatTemplates.FromTokenizerConfig(dir.Path).RenderPrompt([ChatMessage.User("Hi")]));
    }

    [Fact]
    public void Named_templates_in_tokenizer_config_take_the_default()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(new
        {
            chat_template = new[] { new { name = "tool_use", template = "tools" }, new { name = "default", template = "default:{{ messages | length }}" } },
        }));
        Assert.Equal("default:1", ChatTemplates.FromTokenizerConfig(dir.Path).RenderPrompt([ChatMessage.User("Hi")]));
    }

    [Fact]
    public void DetectionEdgeCases()
    {
        var tiny = Assert.IsType<JinjaChatTemplate>(ChatTemplates.FromTokenizerConfig(Repo.Fixture("tokenizers", "tiny-bpe", "tokenizer_config.json")));
        Assert.Equal("<|im_end|>\n", tiny.EndOfTurn);
        using var dir = new TempDir();
        var none = dir.File("tokenizer_config.json");
        File.WriteAllText(none, "{\"eos_token\": \"</s>\"}");
        Assert.Equal("plain", ChatTemplates.FromTokenizerConfig(none).Name);
        File.WriteAllText(none, "{ broken");
        Assert.Contains(none, Assert.Throws<InvalidDataException>(() => ChatTemplates.FromTokenizerConfig(none)).Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => ChatTemplates.FromTokenizerConfig(dir.File("missing.json")));
    }

    [Fact]
    public void ByNameRejectsUnknownNamesListingChoices()
    {
        Assert.Same(ChatTemplates.ChatMl, ChatTemplates.ByName("ChatML"));
        var e = Assert.Throws<UserInputException>(() => ChatTemplates.ByName("vicuna"));
        foreach (var name in new[] { "chatml", "llama3", "phi3", "plain" }) Assert.Contains(name, e.Message, StringComparison.Ordinal);
    }
}
