trigger SextantAccountTrigger on Account(after insert, after update) {
    SextantChangeHandler.run(Account.SObjectType, Trigger.operationType, Trigger.new, Trigger.oldMap);
}
